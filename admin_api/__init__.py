"""The admin API (Flask). Never talks to a live channel; validates, stores, publishes."""
