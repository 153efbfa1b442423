// A type name split in two.
param ok string = 'x'
param name strin g = 'y'
