"""Test support shared by the integration and end-to-end suites: real servers, started on free ports."""
