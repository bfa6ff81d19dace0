"""Storage adapters: S3 and MongoDB clients (and the signed S3 client of the hot paths), the SQL
reference and final-tables databases, the completed-games archive and retiring ended games, the
Spark job and its session resource."""
