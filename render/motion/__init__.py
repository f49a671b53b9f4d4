"""Moving pictures: frames dreamed one after another (zooms, dreamed videos)."""
