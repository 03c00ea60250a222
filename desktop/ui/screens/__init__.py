"""One module per screen (ux Part C). Each screen rebuilds its body from the store on ``refresh``."""
