"""Does a score predict anything? Its ROC AUC, lift and conversion rate per band against a
lifecycle stage reached later (README: Evaluate a score)."""
