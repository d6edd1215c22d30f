VUjZE+k6+7xgBO+22L4vjy4nx9KGbppueLLM90FBVkdvo1s3a+JOVso+ssxCSo5gy7sS+nOxmG8/KsNt6bl5Aw==
