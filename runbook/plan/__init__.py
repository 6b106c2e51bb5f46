"""The night's plan (issue 20): what every step will do with today's values, computed without
changing anything (``sources``), as pure data (``model``), and the checks that what runs after
a step is what the plan said (``certify``)."""
