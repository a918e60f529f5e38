"""Commands that are stored and answered with success but change nothing in the mirror."""
