"""The run's charts (SVG) and the standalone HTML report page."""
