"""FHIR R4 and Synthea CSV parsing into domain objects. No database, no identifiers leak out."""
