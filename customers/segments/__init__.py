"""Segments: definitions compiled to SQL, stored memberships kept fresh, and their history."""
