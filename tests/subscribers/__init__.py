"""Tests of newsletter/subscribers/ (the reader rules, without the web)."""
