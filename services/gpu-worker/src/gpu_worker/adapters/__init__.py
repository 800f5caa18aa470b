"""The world behind the service layer's ports: data download, model and checkpoint stores (the Hub
or local folders), checkpoint sync, daemon threads, hardware detection, the platform's enrolment
API."""
