"""The gateway's edge, in Trio terms: the Vitess endpoint's logic, serving, shutdown, memory."""
