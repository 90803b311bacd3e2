"""Media decoding with timestamps, and writers (CSV tables, ABAW submissions)."""
