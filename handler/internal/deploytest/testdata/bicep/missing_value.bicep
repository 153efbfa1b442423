// A parameter default with no value.
param name string = 
param other string = 'x'
