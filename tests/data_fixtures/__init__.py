"""Writers of tiny data sets in the exact on-disk formats the real converters read (tests only)."""
