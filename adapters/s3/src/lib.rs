//! The S3 adapter: buckets on aws-sdk-s3 plus the server's admin API for users, keys and quotas
