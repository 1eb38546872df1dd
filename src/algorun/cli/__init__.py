"""The `algorun` command line."""
