"""Pure core: no I/O, no clocks, no network; same input, same output."""
