"""What an editor does with issues, once, for the console, the REST API and the CLI.

Why a package of its own: the operations join issues/ (content, states, checks, preview),
delivery/ (test sends, starting, pausing and cancelling a send, its figures) and editors/ (the
audit log). delivery/ already imports issues/, so this layer cannot live inside issues/
without a package import cycle; it sits above both, below web/ and cli/.
"""
