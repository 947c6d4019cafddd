"""Issues: the week's selection, rendering and the MIME message."""
