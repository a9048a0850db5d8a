"""What the API and the console share, so that neither imports the other: the process's
services inside a request, the hook for the console's error pages, and the parsing of what
both accept (a loan step, a remote-support start). A console view and an API route of the
same action validate its input with the same function here."""
