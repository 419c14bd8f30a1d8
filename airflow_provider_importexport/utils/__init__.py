"""Helpers the operators use that are not operators themselves."""
