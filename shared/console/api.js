// Calls to the service.
