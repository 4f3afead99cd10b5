"""The API's rules, in the offline teacher's own copy: shapes, parameters, image checks, billing and limits."""
