"""What the admin console shows besides the features' own endpoints: the pipeline's state."""
