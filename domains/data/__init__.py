"""The embedded Shakespeare corpus (see README.md here); read through `domains.text`."""
