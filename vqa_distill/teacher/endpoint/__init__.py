"""The OpenAI-compatible endpoint: what is asked, the client, the free endpoint check, the key, and the model table."""
