"""The plan service (issue 20): compute, store, audit and post the night's plan."""
