"""Search spaces, candidate ops, the supernet and the discrete evaluation network: torch only,
except the NAS-Bench-201 table (spaces/nb201/table.py), which needs pandas and pyarrow to
convert or load the table (imported where it is read, so importing the package needs neither)."""
