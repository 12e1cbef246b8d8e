"""Local development stack: private stand-ins for the cloud services Coinfrs uses."""
