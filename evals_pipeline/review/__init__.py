"""Review: the domain expert's queues, the review app, and the failure taxonomy."""
