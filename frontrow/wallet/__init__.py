"""Money over PostgreSQL: wallets, the ledger, payments and receipts."""
