"""HTTP routes: one blueprint per endpoint type, plus listings, health and error rendering."""
