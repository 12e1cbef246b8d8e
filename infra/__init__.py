"""Infrastructure code that is not deployed with the functions: local stack and simulators."""
