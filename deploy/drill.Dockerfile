# Apache Drill (embedded mode) with the Microsoft SQL Server JDBC driver, which the `mssql`
# storage plugin (drill-storage-plugins/mssql.json) loads from jars/3rdparty.
FROM apache/drill:1.21.2

# The jre8 build of the driver runs on the image's Java 8 and on any later Java.
ARG MSSQL_JDBC_VERSION=12.8.1.jre8
ADD https://repo1.maven.org/maven2/com/microsoft/sqlserver/mssql-jdbc/${MSSQL_JDBC_VERSION}/mssql-jdbc-${MSSQL_JDBC_VERSION}.jar \
    /opt/drill/jars/3rdparty/
