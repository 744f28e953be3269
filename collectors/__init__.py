"""Edge programs that receive records from agencies and publish them to the bus."""
