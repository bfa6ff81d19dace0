"""Storage adapters: S3 and MongoDB clients, the SQL reference and final-tables databases, the
completed-games archive, the Spark job and its session resource."""
