"""Architecture selection: magnitude, DARTS-PT and PT-Mag through one `select()`."""
