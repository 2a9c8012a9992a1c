"""Pure domain logic (no I/O): address management and placement."""
