"""The sub-commands besides running an experiment: `runner report`, `runner nb201-table`."""
