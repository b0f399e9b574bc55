"""The node recipe's steps; each renders commands and files from a RecipeContext (pure)."""
