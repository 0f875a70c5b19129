"""LayerStudio's Qt shell over the engine: widgets, the document, undo commands, the training thread."""
