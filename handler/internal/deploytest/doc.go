// Package deploytest checks the deployment against the code: every Bicep
// file parses, the Bicep sets every app setting the handler reads and
// creates every connection and queue the function.json files name, and
// `make package` produces the folder that the Functions host, the local
// runner and azd take. It holds tests only.
package deploytest
