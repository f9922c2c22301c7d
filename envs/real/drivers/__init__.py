"""Robot drivers: one module per kind of arm, loaded by URL scheme."""
