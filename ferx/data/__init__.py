"""FER2013 in, prepared splits out: reading and checking the CSV (`fercsv`, `archives`),
the synthetic stand-in (`synthetic`), the prepare stage's splits and probes (`prepare`), what
later stages read of them (`splits`), and images turned into 48x48 faces (`faces`)."""
