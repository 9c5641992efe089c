"""The accuracy-drop home: scoring and drop statistics (``stats``), the evidence collectors
(``evidence``), the pure diagnosis and its ``Diagnosis`` enum (``diagnosis``), the verification
criteria (``verify``) and the steps (``home``)."""
