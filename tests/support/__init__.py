"""What tests share: factories of events and tenants, service fixtures, and fakes of the unit of work."""
