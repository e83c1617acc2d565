"""Company scores (README: Company scores): which company a contact belongs to (`membership`,
with the shipped free-mail list), and company scores as of a day, their export and explanation
(`scores`)."""
