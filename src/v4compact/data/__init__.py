"""Access to the V4 recording data: session catalogue, images, responses, downloads."""
