from setuptools import find_packages, setup

# Versions are pinned to what the project is tested with; Dagster's libraries move together.
DAGSTER = "1.13.27"
DAGSTER_LIBS = "0.29.27"

EMBEDDED = [
    "moto[server]==5.2.5",  # local S3 server: moto's S3 backend (local/local_s3.py)
    "cheroot==11.1.2",  # ... served by CherryPy's WSGI server (keep-alive, a worker pool)
    "nx-27017==0.8.1",  # MongoDB wire-protocol server over SQLite (quirks: docs/embedded-stack.md)
]

setup(
    name="sidearm_assets",
    version="0.1.0",
    description="Live college lacrosse box scores: a Dagster asset graph over S3, MongoDB and SQL",
    packages=find_packages(include=["sidearm_assets", "sidearm_assets.*", "gamestream", "gamestream.*"]),
    package_data={
        "gamestream": ["games/*.txt"],
        "sidearm_assets.web": ["templates/*.html", "static/*"],
    },
    python_requires=">=3.10",
    install_requires=[
        f"dagster=={DAGSTER}",
        f"dagster-webserver=={DAGSTER}",
        f"dagster-pyspark=={DAGSTER_LIBS}",
        # PySpark and its Spark Connect client (the `connect` extra, each package pinned): the
        # final tables run on a Spark Connect server when SIDEARM_SPARK_REMOTE is set.
        "pyspark[connect]==4.3.0",
        "pandas==2.3.3",  # pyspark 4.3 warns that it does not fully support pandas 3 yet
        "pyarrow==26.0.1",
        "duckdb==2.0.0",  # the season analytics over the lake's Parquet (docs/lake.md)
        "numpy==2.4.6",
        "grpcio==1.85.3",
        "grpcio-status==1.85.3",
        "googleapis-common-protos==1.76.0",
        "zstandard==0.25.0",
        "boto3==1.44.5",
        "pymongo==4.20.0",
        "SQLAlchemy==2.1.9",
        # sidearm-web (pages, JSON, push channel) and sidearm-ingest: Starlette on uvicorn (the
        # same versions dagster-webserver brings), the pages rendered by Jinja2
        "starlette==1.10.0",
        "uvicorn[standard]==0.54.0",
        "Jinja2==3.1.6",
        "psutil==7.2.2",  # process control of the embedded stack, demo, tests (local/processes.py)
        "tenacity==9.2.1",  # blocking waits and retries (sidearm_assets/retrying.py)
        "fastapi==0.163.2",  # sidearm-ingest: routes, its OpenAPI schema (/openapi.json) and /docs
    ],
    extras_require={
        "embedded": EMBEDDED,
        "postgres": ["psycopg2-binary==2.9.13"],
        "mssql": ["pyodbc==5.5.0"],
        "dev": EMBEDDED
        + [
            "psycopg2-binary==2.9.13",
            "pytest==9.2.0",
            "pytest-timeout==2.4.0",
            "pytest-xdist==3.8.0",
            "import-linter==2.16",  # the import contracts of .importlinter (test_architecture.py)
            "hypothesis==6.170.15",  # property-based tests of the domain (test_properties.py)
            "httpx2==2.16.2",  # Starlette's test client (test_web.py)
            "playwright==1.65.2",  # browser tests drive Debian's chromium; never `playwright install`
            "pyodbc==5.5.0",  # the mssql+pyodbc engine is built (not connected) in tests
            f"dagster-postgres=={DAGSTER_LIBS}",  # production instance config is loaded in tests
            "nbformat==5.11.1",
            "schemathesis==4.32.5",  # the ingest API fuzzed from its own schema (test_ingest_api.py)
        ],
        "deploy": ["pyodbc==5.5.0", "psycopg2-binary==2.9.13", f"dagster-postgres=={DAGSTER_LIBS}"],
    },
    entry_points={
        "console_scripts": [
            "sidearm-local=sidearm_assets.local.stack_cli:main",
            "gamestream=gamestream.simulator:main",
            "sidearm-games=sidearm_assets.local.cli:main",
            "sidearm-lake=sidearm_assets.local.lake_cli:main",
            "sidearm-web=sidearm_assets.web.app:main",
            "sidearm-ingest=sidearm_assets.ingest.app:main",
        ],
    },
)
