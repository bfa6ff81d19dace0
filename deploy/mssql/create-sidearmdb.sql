-- Run once per start by the mssql-init service (docker-compose.yaml); safe to run again.
-- The tables themselves are created by the simulator and the pipeline (sidearm_assets.storage.reference_db).
IF DB_ID(N'sidearmdb') IS NULL
    CREATE DATABASE sidearmdb;
GO

-- Readers of the live tables (Drill, the box score, the notebook) read the last committed
-- version instead of waiting on the simulator's reset or the final-table swap.
IF EXISTS (SELECT 1 FROM sys.databases WHERE name = N'sidearmdb' AND is_read_committed_snapshot_on = 0)
    ALTER DATABASE sidearmdb SET READ_COMMITTED_SNAPSHOT ON WITH ROLLBACK IMMEDIATE;
GO

SELECT name, is_read_committed_snapshot_on FROM sys.databases WHERE name = N'sidearmdb';
GO
