"""Generated from proto/cdas/v1/coordinator.proto by ``make proto``; do not edit."""
