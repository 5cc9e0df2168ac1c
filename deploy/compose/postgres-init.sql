-- Two databases on one server: the ledger (cmesync) and Prefect's own (prefect).
CREATE USER prefect WITH PASSWORD 'prefect';
CREATE DATABASE prefect OWNER prefect;
