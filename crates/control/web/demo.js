// Demo page logic.
