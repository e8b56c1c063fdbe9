"""django-storages' S3 storage, with signed URLs for an address other than the servers' own.

In docker compose the web and workers reach MinIO as http://minio:9000 while browsers reach it
at a published address. A presigned URL signs its host, so URLs are made by a client of the
public endpoint; making one sends no request. Imported only when a bucket is configured.
"""

from __future__ import annotations

import threading

from storages.backends import s3


class S3Storage(s3.S3Storage):
    def get_default_settings(self):
        return {**super().get_default_settings(), "public_endpoint_url": None}

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_public_clients", None)
        return state

    def url(self, name, parameters=None, expire=None, http_method=None):
        if not self.public_endpoint_url or self.custom_domain:
            return super().url(name, parameters, expire, http_method)
        clients = self.__dict__.setdefault("_public_clients", threading.local())
        client = getattr(clients, "client", None)
        if client is None:
            client = self._create_session().client(
                "s3",
                region_name=self.region_name,
                endpoint_url=self.public_endpoint_url,
                config=self.client_config,
            )
            clients.client = client
        params = {**(parameters or {}), "Bucket": self.bucket_name}
        params["Key"] = self._normalize_name(s3.clean_name(name))
        return client.generate_presigned_url(
            "get_object",
            Params=params,
            ExpiresIn=self.querystring_expire if expire is None else expire,
            HttpMethod=http_method,
        )
